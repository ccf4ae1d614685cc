#!/bin/sh
# deps.sh PKG...: installs the Debian packages that are missing, through apt-get.
# Does nothing when all are present; without root, prints the command to run instead.
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "flare: installing missing Debian packages:$missing"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=sudo
    else
        echo "flare: not root. Run this, then make again:"
        echo "    sudo apt-get update && sudo apt-get install -y$missing"
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq $missing
