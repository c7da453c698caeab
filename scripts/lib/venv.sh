# shellcheck shell=bash
# make_venv NAME VENV REQUIREMENTS CONSTRAINTS: makes the virtualenv VENV
# with exactly what REQUIREMENTS asks for, every package pinned by
# CONSTRAINTS (pip's own version too, from its pip== line), and stamps it;
# remade from scratch only when either file or the Python interpreter has
# changed, so a second call costs a few milliseconds. NAME prefixes its
# messages. The caller holds whatever lock keeps two set-ups apart.
make_venv() {
  local name=$1 venv=$2 requirements=$3 constraints=$4
  local python=/usr/bin/python3 stamp="$2/.xdpath-stamp" want
  want=$(cat "$requirements" "$constraints" <("$python" -VV) | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
    return 0
  fi
  echo "$name: making the venv $venv" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  "$venv/bin/pip" install -q "pip==$(sed -n 's/^pip==//p' "$constraints")" >&2
  "$venv/bin/pip" install -q -c "$constraints" -r "$requirements" >&2
  "$venv/bin/pip" check >&2
  echo "$want" >"$stamp"
}
