#!/bin/sh
# Executes greenq_demo.ipynb against a greenq API and fails if any cell
# errors. Usage: run_notebook.sh API_URL [OUT_DIR]
# Needs Debian's python3-nbclient python3-ipykernel jupyter-nbconvert
# (they serve /usr/bin/python3). GREENQ_TOKEN is passed through.
set -eu
if [ $# -lt 1 ]; then
	echo "usage: $0 API_URL [OUT_DIR]" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-$(mktemp -d)}
export GREENQ_API_URL="$1"
export PYTHONDONTWRITEBYTECODE=1 PYDEVD_DISABLE_FILE_VALIDATION=1
/usr/bin/python3 -m nbconvert --to notebook --execute \
	--ExecutePreprocessor.timeout=180 --ExecutePreprocessor.kernel_name=python3 \
	--output-dir "$out" --output greenq_demo.executed.ipynb "$here/greenq_demo.ipynb"
echo "executed notebook: $out/greenq_demo.executed.ipynb"
