#!/usr/bin/env bash
# Idempotent set-up of the OpenStack test environment (Octavia with the
# xdpath provider driver; Neutron with the xdpath mechanism driver and
# agent), as root on Debian 12. Costs about a second when
# everything is in place; see README.md for what a fresh machine costs.
#
# - MariaDB from Debian (the tests start their own server on a data directory
#   of their own; the system's service is never started or used);
# - a virtualenv with Octavia, octavia-lib, Neutron, neutron-lib,
#   neutron-fwaas, openstacksdk, the clients and the checkers, exactly as
#   pinned in requirements.txt and constraints.txt;
# - octavia-xdpath and neutron-xdpath from this checkout, installed editable
#   into that venv.
#
# The venv lives outside the checkout (XDPATH_OPENSTACK_VENV, by default
# /var/lib/xdpath-openstack/venv) so that every checkout on the machine (the
# work trees, CI's fresh clone) shares one install of ~500 MB that takes about
# a minute to make, the way they share the Debian packages; it is remade only
# when requirements.txt, constraints.txt or the Python interpreter change.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "openstack/setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

here="$(cd "$(dirname "$0")" && pwd)"
start=$(date +%s%N)
state_dir=/var/lib/xdpath-openstack
venv="${XDPATH_OPENSTACK_VENV:-$state_dir/venv}"

# MariaDB for Octavia; what the end-to-end test's namespaces run (nginx,
# curl, ip, ethtool, nsenter).
packages=(mariadb-server mariadb-client python3 python3-venv nginx curl iproute2 ethtool util-linux)
# shellcheck source=../scripts/lib/debian.sh
source "$here/../scripts/lib/debian.sh"
ensure_debian_packages openstack/setup.sh "${packages[@]}"

mkdir -p "$state_dir" "$(dirname "$venv")"
# One set-up at a time on this machine: two checkouts share the venv.
exec 9>"$state_dir/setup.lock"
flock 9

# The venv: remade from scratch when what it was made from has changed.
# shellcheck source=../scripts/lib/venv.sh
. "$here/../scripts/lib/venv.sh"
make_venv openstack/setup.sh "$venv" "$here/requirements.txt" "$here/constraints.txt"

# octavia-xdpath and neutron-xdpath, editable from this checkout: each
# reinstalled (without dependencies, which the venv has) when the venv's
# install points at another checkout or the package's pyproject.toml (its
# entry points) has changed.
install_editable() {
  local name=$1 module=$2 package="$here/$1" want_pkg pkg_stamp out
  want_pkg="$package $(sha256sum "$package/pyproject.toml" | cut -d' ' -f1)"
  pkg_stamp="$venv/.xdpath-$name"
  if [ "$(cat "$pkg_stamp" 2>/dev/null || true)" != "$want_pkg" ] \
    || ! "$venv/bin/python" -c "import $module" 2>/dev/null; then
    echo "openstack/setup.sh: installing $name from $package (editable)" >&2
    # (Its output only on failure: setuptools warns about every editable install.)
    if ! out=$(PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install -q --no-deps \
      --no-build-isolation -e "$package" 2>&1); then
      echo "$out" >&2
      exit 1
    fi
    echo "$want_pkg" >"$pkg_stamp"
  fi
}
install_editable octavia-xdpath octavia_xdpath
install_editable neutron-xdpath neutron_xdpath

ms=$((($(date +%s%N) - start) / 1000000))
printf 'openstack/setup.sh: ready in %d.%01d s (venv %s)\n' $((ms / 1000)) $((ms % 1000 / 100)) "$venv" >&2
