-- The run's timeout, so an execution whose runtime never answered can be settled
-- as failed once it is overdue (`executions::settle_stale`). Not idempotent on its
-- own: it runs once, in the transaction that bumps `user_version`.
ALTER TABLE executions ADD COLUMN timeout INTEGER;
