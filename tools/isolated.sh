#!/bin/bash
# Run a command in private mount, PID and network namespaces whose /run/netns, /etc/netns and
# /run/netconform start empty, so a test of `netconform lab down --all` removes only the labs it made
# itself, never other users' or other workers' labs on a shared host. The lab code runs unchanged inside
# (real namespaces, processes and iptables; "the root namespace" is the sandbox's own).
# Without root or unshare (the lab tests skip there anyway) the command runs as it is.
set -euo pipefail
if [ "${NETCONFORM_ISOLATED:-}" = 1 ]; then
    mkdir -p /run/netns /etc/netns /run/netconform
    for dir in /run/netns /etc/netns /run/netconform; do mount -t tmpfs -o mode=0755 netconform-isolated "$dir"; done
    ip link set lo up
    exec "$@"
fi
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare --mount --pid --fork --net true 2>/dev/null; then
    exec env NETCONFORM_ISOLATED=1 unshare --mount --propagation private --pid --fork --mount-proc --net "$0" "$@"
fi
echo "isolated.sh: cannot isolate (needs root and unshare); running the command as it is" >&2
exec "$@"
