-- An execution's text output, stored as it is: inside the JSON `result` a control byte would
-- take six bytes (`\u0001`). `result` then holds the rest (`{"duration": ...}`).
ALTER TABLE executions ADD COLUMN output TEXT;
