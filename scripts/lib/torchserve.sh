# shellcheck shell=bash
# Venvs for TorchServe versions other than the main venv's, sourced by
# scripts/setup (which holds the setup lock). Each one,
# $DFE_CACHE/torchserve-VERSION, is a venv of the main venv's Python that
# holds only `torchserve==VERSION` (without its dependencies) and, where
# the version needs it, its own setuptools; a .pth file then appends the
# main venv's site-packages to sys.path. So torch, PyYAML, psutil, Pillow
# and packaging come from the main venv (torch is installed once), while
# the version's own `ts` package, launcher and model-server.jar come first.
# Stamped: a warm call only compares the stamp.

# dfe_torchserve_requirements VERSION: what pip installs into its venv.
dfe_torchserve_requirements() {
  local version="$1"
  printf '%s\n' "torchserve==$version"
  # 0.9.0 to 0.11.0 import pkg_resources in base_handler.py, which breaks
  # with setuptools >= 70 (pytorch/serve#3176, fixed in 0.11.1).
  case "$version" in
    0.8.* | 0.9.* | 0.10.* | 0.11.0) printf '%s\n' "setuptools<70" ;;
  esac
}

# dfe_torchserve_install VERSION: create or check the venv of VERSION.
dfe_torchserve_install() {
  local version="$1" venv py site main_site stamp want t0=$SECONDS
  venv="$(dfe_torchserve_venv "$version")"
  [[ "$venv" != "$DFE_VENV" ]] || return 0
  py="$venv/bin/python"
  stamp="$venv/.dfe-requirements.sha256"
  main_site="$("$DFE_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  want="$( { dfe_torchserve_requirements "$version"; echo "$main_site"; } | sha256sum | cut -d' ' -f1)"
  if [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    dfe_log "  torchserve $version: up to date ($venv)"
    return 0
  fi
  local log="$DFE_LOGS/setup-torchserve-$version.log"
  dfe_log "  torchserve $version: installing into $venv (log $log)"
  rm -f "$stamp"
  [[ -x "$py" ]] || "$DFE_PY" -m venv "$venv" >>"$log" 2>&1 ||
    dfe_die setup "$log" "creating the venv of torchserve $version failed"
  site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  # Without the main venv on sys.path while pip runs: it must not see (and
  # try to replace) the main venv's torchserve.
  rm -f "$site/dfe-main-venv.pth"
  local reqs
  mapfile -t reqs < <(dfe_torchserve_requirements "$version")
  "$py" -m pip install --disable-pip-version-check -q --no-deps "${reqs[@]}" >>"$log" 2>&1 ||
    dfe_die setup "$log" "pip install ${reqs[*]} failed"
  printf '%s\n' "$main_site" >"$site/dfe-main-venv.pth"
  # The worker's imports, its handler base class (pkg_resources) included.
  "$py" - "$version" >>"$log" 2>&1 <<'PY' || dfe_die setup "$log" "torchserve $version: import check failed"
import sys
import importlib.metadata as md
import torch, yaml, psutil, ts
from ts.torch_handler.base_handler import BaseHandler
assert md.version("torchserve") == sys.argv[1], md.version("torchserve")
assert ts.__file__.startswith(sys.prefix), ts.__file__
print("torchserve", md.version("torchserve"), "torch", torch.__version__, "ok")
PY
  echo "$want" >"$stamp"
  dfe_log "  torchserve $version: installed ($((SECONDS - t0)) s)"
}
