#!/usr/bin/env bash
# Print the path of a working Python 3.10 interpreter (Lava 0.10 needs exactly 3.10), or explain how to get one.
set -u
for candidate in python3.10 "$(command -v pyenv >/dev/null 2>&1 && pyenv root)"/versions/3.10*/bin/python3.10 \
                 /usr/bin/python3.10 /usr/local/bin/python3.10; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
        command -v "$candidate" 2>/dev/null || echo "$candidate"
        exit 0
    fi
done
echo "evprop needs Python 3.10 (Lava 0.10 supports only 3.10) and none was found on PATH or under pyenv." >&2
echo "Install it, e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv', then re-run make." >&2
exit 1
