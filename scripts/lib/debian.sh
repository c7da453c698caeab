# shellcheck shell=bash
# Sourced by the set-up scripts: Debian packages installed only when missing,
# so a set-up on a machine that has them costs a dpkg query per package.

# ensure_debian_packages WHO PACKAGE...: installs the PACKAGEs that are not
# installed yet; WHO names the script in what it prints.
ensure_debian_packages() {
  local who=$1 package
  shift
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$package")
  done
  if ((${#missing[@]})); then
    echo "$who: installing ${missing[*]}" >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
}
