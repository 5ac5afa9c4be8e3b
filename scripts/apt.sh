# Sourced by the scripts that install Debian packages (install-deps.sh, package-deb.sh,
# check-deb.sh): `apt_install PKG...` installs those not installed yet, as root or
# through sudo, quietly, naming them first.
apt_install() {
  local missing=() p sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then return 0; fi
  echo "${0##*/}: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}
