#! /bin/bash
# Runner for the bai-manager systemd unit (deploy/systemd/backendai-manager.service), adapted
# from the install guide's run-manager.sh: no Python environment to activate, just the binary.
# Install it as ${HOME}/bin/run-manager.sh and make it executable.
#
#   run-manager.sh            starts the manager (bai-manager start-server) in the current folder,
#                             which finds ./manager.toml or ~/.config/backend.ai/manager.toml
#   run-manager.sh CMD ARGS   runs CMD instead (e.g. run-manager.sh bai-manager etcd get --prefix config)
#
# BAI_MANAGER overrides where the binary is (default: ${HOME}/bin/bai-manager, else the PATH).
set -e

if [ -z "$HOME" ]; then
   export HOME="/home/bai"
fi

if [ -z "$BAI_MANAGER" ]; then
   if [ -x "$HOME/bin/bai-manager" ]; then
      BAI_MANAGER="$HOME/bin/bai-manager"
   else
      BAI_MANAGER="$(command -v bai-manager || true)"
   fi
fi
if [ -z "$BAI_MANAGER" ] || [ ! -x "$BAI_MANAGER" ]; then
   echo "run-manager.sh: cannot find the bai-manager binary (set BAI_MANAGER or install it as $HOME/bin/bai-manager)" >&2
   exit 1
fi

if [ "$#" -eq 0 ]; then
   exec "$BAI_MANAGER" start-server
else
   exec "$@"
fi
