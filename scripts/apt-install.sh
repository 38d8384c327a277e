#!/usr/bin/env bash
# scripts/apt-install.sh PACKAGE: install one Debian package for the project's test servers
# (postgres.sh, nats.sh) and browser tests (chromium.sh), refreshing the package lists once if the first try fails. Needs root.
set -euo pipefail
package="${1:?usage: apt-install.sh PACKAGE}"
if [ "$(id -u)" != 0 ]; then
    echo "$package is not installed; run 'apt-get install $package' as root" >&2
    exit 1
fi
echo "installing $package (Debian package)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "$package" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q "$package" >/dev/null; }
