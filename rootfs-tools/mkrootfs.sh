#!/usr/bin/env bash
# mkrootfs.sh DIR: build a busybox root filesystem in DIR from Debian's
# busybox-static (applet symlinks, /etc/passwd and /etc/group, the usual dirs).
set -euo pipefail
dir=${1:?usage: mkrootfs.sh DIR}
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "mkrootfs: $bb missing (apt-get install busybox-static)" >&2; exit 2; }
file -L "$bb" 2>/dev/null | grep -q 'dynamically linked' && { echo "mkrootfs: $bb is not static" >&2; exit 2; }
mkdir -p "$dir"/{bin,sbin,etc,proc,sys,dev,tmp,root,home,run,var/tmp,usr/bin,usr/sbin}
cp "$bb" "$dir/bin/busybox"
for applet in $("$bb" --list); do
  [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
done
chmod 1777 "$dir/tmp" "$dir/var/tmp"
cat > "$dir/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat > "$dir/etc/group" <<'GR'
root:x:0:
daemon:x:1:
tty:x:5:
nogroup:x:65534:
GR
echo "vessel-rootfs" > "$dir/etc/hostname"
: > "$dir/etc/resolv.conf"
: > "$dir/etc/hosts"
