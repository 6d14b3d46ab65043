#!/usr/bin/env bash
# One script, two commands (see README):
#   ./dev.sh app    create .venv, install everything, open the app on the bundled MNIST
#   ./dev.sh test   create .venv, install everything, run the whole test suite
# Extra arguments go to streamlit / pytest. PYTHON picks the interpreter (3.11+).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=.venv

install() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
      || { echo "error: Python 3.11 or newer is needed (PYTHON=$PYTHON)" >&2; exit 2; }
    "$PYTHON" -m venv "$VENV"
  fi
  # Reinstall only when requirements.txt changed since the last successful install.
  local stamp="$VENV/.requirements.sha256"
  local want
  want=$("$VENV/bin/python" -c \
    'import hashlib; print(hashlib.sha256(open("requirements.txt", "rb").read()).hexdigest())')
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$want" > "$stamp"
  fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  app)
    install
    exec "$VENV/bin/python" -m streamlit run app/streamlit_app.py "$@"
    ;;
  test)
    install
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: ./dev.sh app|test [args...]" >&2
    exit 2
    ;;
esac
