#!/usr/bin/env bash
# Make sure the local test image ${CM_TEST_IMAGE:-cm-busybox:latest} exists and
# runs. It is built without any registry: a static busybox rootfs piped into
# `docker import`. Idempotent; needs a running engine (infra/docker-engine.sh).
set -euo pipefail
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE=${CM_TEST_IMAGE:-cm-busybox:latest}
BUSYBOX=/bin/busybox

image_works() { [ "$(docker run --rm "$IMAGE" sh -c 'echo ok' 2>/dev/null)" = ok ]; }

docker info >/dev/null 2>&1 || die "no Docker engine reachable; run infra/docker-engine.sh first"

old_id=
if old_id=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null); then
    if image_works; then
        log "image $IMAGE is present and runs"
        exit 0
    fi
    log "image $IMAGE exists but 'sh -c \"echo ok\"' fails in it; rebuilding"
fi

is_static() {
    [ -x "$1" ] || return 1
    if command -v file >/dev/null 2>&1; then
        file -L "$1" | grep -q 'statically linked'
    else
        dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'
    fi
}
if ! is_static "$BUSYBOX"; then
    apt_install busybox-static
    is_static "$BUSYBOX" || die "$BUSYBOX is still not a static binary after installing busybox-static"
fi

ensure_state_dir
work=$(mktemp -d "$CM_INFRA_DIR/busybox-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root/bin" "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    # The list contains "busybox" itself: linking it would clobber the binary.
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

log "importing $IMAGE from a busybox rootfs ($(find "$root/bin" -mindepth 1 | wc -l) entries in /bin)"
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/bin' \
    --change 'CMD ["sh"]' \
    - "$IMAGE" >/dev/null

image_works || die "built $IMAGE but 'docker run --rm $IMAGE sh -c \"echo ok\"' does not print ok"
log "image $IMAGE built and verified"
# Drop the broken image it replaced, unless a container still uses it.
[ -z "$old_id" ] || docker rmi "$old_id" >/dev/null 2>&1 || true
