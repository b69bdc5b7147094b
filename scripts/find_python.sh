#!/usr/bin/env bash
# Print the path of a working Python X.Y interpreter (default 3.10: Lava 0.10 needs exactly 3.10; CI also runs the
# core tests on 3.12), or explain how to get one.  Usage: scripts/find_python.sh [X.Y]
set -u
want="${1:-3.10}"
pyenv_root="$(command -v pyenv >/dev/null 2>&1 && pyenv root || echo "$HOME/.pyenv")"
for candidate in "python$want" "$pyenv_root"/versions/"$want".*/bin/"python$want" \
                 "/usr/bin/python$want" "/usr/local/bin/python$want"; do
    if [ -n "$candidate" ] && "$candidate" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$want'" \
            >/dev/null 2>&1; then
        command -v "$candidate" 2>/dev/null || echo "$candidate"
        exit 0
    fi
done
if [ "$want" = "3.10" ]; then
    echo "evprop's full environment needs Python 3.10 (Lava 0.10 supports only 3.10) and none was found on PATH or under pyenv." >&2
else
    echo "no Python $want found on PATH or under pyenv." >&2
fi
echo "Install it, e.g. 'pyenv install $want' or 'apt-get install python$want python$want-venv', then re-run." >&2
exit 1
