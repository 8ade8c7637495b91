#!/usr/bin/env bash
# mkimage.sh OUTDIR: build the busybox test image without a registry.
#   OUTDIR/rootfs.tar      the rootfs (for `podman import`)
#   OUTDIR/busybox-oci.tar an OCI image layout holding that rootfs as its one
#                          uncompressed layer (for `ctr images import`)
# The layout's index names the image localhost/busybox:e2e, linux/amd64.
set -euo pipefail
out=${1:?usage: mkimage.sh OUTDIR}
ref=${IMAGE_REF:-localhost/busybox:e2e}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

mkdir -p "$out"
rootfs="$out/rootfs"
rm -rf "$rootfs"
"$repo/rootfs-tools/mkrootfs.sh" "$rootfs"
# Fixed owner and mtime keep the layer digest stable between runs.
tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$rootfs" -cf "$out/rootfs.tar" .
rm -rf "$rootfs"

layout="$out/oci"
rm -rf "$layout"
mkdir -p "$layout/blobs/sha256"

# put FILE: store FILE as a blob; prints "DIGEST SIZE".
put() {
  local d s
  d=$(sha256sum "$1" | cut -d' ' -f1)
  s=$(stat -c %s "$1")
  mv "$1" "$layout/blobs/sha256/$d"
  echo "$d $s"
}

cp "$out/rootfs.tar" "$layout/layer.tar"
diff_id=$(sha256sum "$layout/layer.tar" | cut -d' ' -f1)
read -r layer_digest layer_size < <(put "$layout/layer.tar")

cat > "$layout/config.json" <<JSON
{"architecture":"amd64","os":"linux",
 "config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/"},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]}}
JSON
read -r config_digest config_size < <(put "$layout/config.json")

cat > "$layout/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_digest","size":$config_size},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$layer_digest","size":$layer_size}]}
JSON
read -r manifest_digest manifest_size < <(put "$layout/manifest.json")

cat > "$layout/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
 "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",
   "digest":"sha256:$manifest_digest","size":$manifest_size,
   "annotations":{"org.opencontainers.image.ref.name":"$ref"},
   "platform":{"architecture":"amd64","os":"linux"}}]}
JSON
echo '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
tar -C "$layout" -cf "$out/busybox-oci.tar" oci-layout index.json blobs
rm -rf "$layout"
