#!/usr/bin/env bash
# Build the bids_eeg2fmri image daemonless and run it the way users run BIDS-Apps.
#
# No Docker engine and no registry are needed: Debian's buildah/podman/runc build and run the
# Dockerfile, and a debootstrap'ed Debian bookworm rootfs stands in for debian:bookworm-slim.
# Everything (image storage, config, containers, outputs) lives in one temp dir that is removed
# on exit; only the base rootfs tarball is kept (in the cache dir) so that a second run is fast.
#
# Steps: tools -> config -> base image -> build -> `--version` -> imports -> simulate a dataset
#        -> BIDS-App participant level with --read-only root and a read-only data mount -> checks.
#
# Environment (all optional):
#   VENV                  host venv with the simulator (default: <repo>/.venv)
#   TORCH_WHEEL           local torch wheel the image is built with (default: the CPU wheel in
#                         /opt/wheels when it exists); "" builds with PyPI's normal torch instead
#   HOST_CA               CA bundle mounted into the pip steps only (default: the system bundle
#                         when it exists); never copied into the image
#   CONTAINER_TEST_CACHE  where the base rootfs tarball is cached
#                         (default: ${XDG_CACHE_HOME:-~/.cache}/bids_eeg2fmri/container-test)
#   BASE_MAX_AGE_DAYS     rebuild the cached base after this many days (default 7)
#   KEEP_WORK=1           keep the temp dir (image storage, outputs) for debugging
#   APP_ARGS              extra options for the participant-level run (e.g. "--registration affine")
#   TMPDIR                where the temp dir goes (default /var/tmp; needs ~6 GB free on disk
#                         unless the storage goes on a tmpfs)
#   CONTAINER_TEST_TMPFS  1/0: image storage on a tmpfs in memory (default: when >= 12 GiB free)
set -euo pipefail
umask 022

# The whole script is one { ... } group, which bash parses completely before running it: editing
# or checking out this file while a run is going cannot change what that run executes.
{

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$REPO/.venv}
DEFAULT_WHEEL=/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
if [[ -z ${TORCH_WHEEL+set} ]]; then
    TORCH_WHEEL=""
    [[ -f $DEFAULT_WHEEL ]] && TORCH_WHEEL=$DEFAULT_WHEEL
fi
if [[ -z ${HOST_CA+set} ]]; then
    HOST_CA=""
    [[ -f /etc/ssl/certs/ca-certificates.crt ]] && HOST_CA=/etc/ssl/certs/ca-certificates.crt
fi
CACHE_DIR=${CONTAINER_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bids_eeg2fmri/container-test}
BASE_MAX_AGE_DAYS=${BASE_MAX_AGE_DAYS:-7}
BASE_TAR=$CACHE_DIR/debian-bookworm-minbase.tar
PARTICIPANT=01

T0=$SECONDS
T_STEP=$SECONDS
TIMINGS=()
log() { printf '[container-test %4ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf '[container-test] FAILED: %s\n' "$*" >&2; exit 1; }
# Record how long the step that just finished took.
lap() { TIMINGS+=("$(printf '%-28s %5ds' "$1" "$((SECONDS - T_STEP))")"); T_STEP=$SECONDS; }

# ------------------------------------------------------------------------------------ 1. tools
# Debian packages, as in CI; installed only when missing (and only as root).
export PATH=$PATH:/usr/sbin:/sbin   # debootstrap lives there; some CI shells lack it
missing=()
for tool in buildah podman debootstrap runc; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null \
        || die "missing ${missing[*]}; install them: apt-get install buildah podman debootstrap runc"
    log "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        buildah podman debootstrap runc >/dev/null
fi
# Rootful: debootstrap needs root, and rootless podman needs subuid ranges this host lacks.
[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap and rootful podman need it)"
lap "tools"

# ----------------------------------------------------------------------------------- 2. config
# The image storage peaks at ~4.5 GB (base, build container and the 2 GB image side by side).
# With enough free memory it goes on a tmpfs: the build then writes no GBs to disk, and
# deleting ~100k files (about a minute on disk here, whether by rm or podman) becomes an umount.
# CONTAINER_TEST_TMPFS: auto (default: when >= 12 GiB of memory is available), 1 or 0.
WORK_PARENT=${TMPDIR:-/var/tmp}
avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
case ${CONTAINER_TEST_TMPFS:-auto} in
    1) use_tmpfs=1 ;;
    0) use_tmpfs=0 ;;
    *) use_tmpfs=$((avail_kb >= 12 * 1024 * 1024)) ;;
esac
WORK=$(mktemp -d "$WORK_PARENT/bids_eeg2fmri-container-test.XXXXXX")
# containers/image keeps a small blob-info cache in /var/lib/containers/cache for root whatever
# the storage config says; remove that folder afterwards only if this run created it.
SYSTEM_CACHE=/var/lib/containers
[[ -e $SYSTEM_CACHE ]] && SYSTEM_CACHE=""
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    log "cleaning up (exit status $rc)"
    if [[ -n ${CONTAINERS_STORAGE_CONF:-} && -f ${CONTAINERS_STORAGE_CONF:-} ]]; then
        # Stops and removes any container still there (runs use --rm; this is for interrupts).
        podman rm --all --force --time 0 >/dev/null 2>&1
    fi
    if [[ ${KEEP_WORK:-0} == 1 ]]; then
        log "kept $WORK (KEEP_WORK=1; unmount it and everything below it when done)"
    else
        # The storage is private to this run: unmount what is mounted below $WORK (layers of
        # the build container, the storage's own bind mount, the tmpfs), deepest first, then
        # delete the folder.
        findmnt -rn -o TARGET | grep -F "$WORK" | sort -r | while read -r mnt; do
            umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
        done
        rm -rf "$WORK"
        [[ -n $SYSTEM_CACHE ]] && rm -rf "$SYSTEM_CACHE"
    fi
    if ((rc == 0)); then log "PASSED in $((SECONDS - T0))s"; else log "FAILED (exit status $rc)"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if ((use_tmpfs)) && mount -t tmpfs -o size=8g,mode=0700 bids_eeg2fmri-container-test "$WORK"; then
    log "image storage on a tmpfs at $WORK"
else
    free_kb=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
    ((free_kb > 6 * 1024 * 1024)) \
        || die "less than 6 GB free in $WORK_PARENT (set TMPDIR to a bigger disk)"
    log "image storage on disk at $WORK"
fi
mkdir -p "$WORK"/{graph,run,tmp,libpod} "$CACHE_DIR"

# Config stays in $WORK, never in /etc. Overlay storage is fast; runc because crun refuses this
# kind of host's hybrid cgroups; the default rlimits cannot be raised here, so ask for the hard
# limit we have.
nofile=$(ulimit -Hn)
[[ $nofile == unlimited ]] && nofile=1048576
cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$WORK/run"
graphroot = "$WORK/graph"
EOF
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = "$WORK/libpod"
EOF
export CONTAINERS_STORAGE_CONF=$WORK/storage.conf CONTAINERS_CONF=$WORK/containers.conf
export BUILDAH_ISOLATION=chroot
# buildah/podman stage blobs and build contexts in TMPDIR: keep those in $WORK as well.
export TMPDIR=$WORK/tmp
lap "config"

# ------------------------------------------------------------------------------ 3. base image
# Debian mirrors as this host's apt uses them (deb822 first, then one-line format).
apt_uri() {  # $1: suite
    local uri=""
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        uri=$(awk -v suite="$1" '
            /^URIs:/ { u = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) print u }
            /^$/ { u = "" }' /etc/apt/sources.list.d/debian.sources | head -n1)
    fi
    if [[ -z $uri ]] && compgen -G "/etc/apt/sources.list*" >/dev/null; then
        uri=$(grep -hsE "^deb +(\[[^]]*\] +)?[^ ]+ +$1( |$)" \
                /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            | sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1; exit}')
    fi
    echo "$uri"
}
if [[ -s $BASE_TAR ]] && [[ -n $(find "$BASE_TAR" -mtime -"$BASE_MAX_AGE_DAYS" -print) ]]; then
    log "base rootfs from cache: $BASE_TAR"
else
    mirror=$(apt_uri bookworm)
    security=$(apt_uri bookworm-security)
    mirror=${mirror:-http://deb.debian.org/debian}
    security=${security:-http://deb.debian.org/debian-security}
    log "debootstrap bookworm (minbase) from $mirror"
    rootfs=$WORK/rootfs
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
    # What the official slim image does: no docs/man pages/locales from later installs, no apt
    # package cache; so image sizes measured here match the real base.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
    find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -type f -delete
    rm -rf "$rootfs"/usr/share/{man,info,locale}/* "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
    tar --numeric-owner -C "$rootfs" -cf "$BASE_TAR.tmp.$$" .
    mv "$BASE_TAR.tmp.$$" "$BASE_TAR"   # atomic: a concurrent or killed run never sees half a file
    rm -rf "$rootfs"
fi
podman import --quiet --change 'CMD ["bash"]' "$BASE_TAR" localhost/debian:bookworm-slim >/dev/null
# The name an unchanged `FROM debian:bookworm-slim` resolves to; found locally, nothing is pulled.
podman tag localhost/debian:bookworm-slim docker.io/library/debian:bookworm-slim
lap "base image"

# ------------------------------------------------------------------------------------ 4. build
VERSION=$(python3 -c 'import runpy, sys; print(runpy.run_path(sys.argv[1])["__version__"])' \
    "$REPO/bids_eeg2fmri/_version.py")
IMAGE=localhost/bids_eeg2fmri:$VERSION
build_args=(
    --build-arg "VERSION=$VERSION"
    --build-arg "IMAGE=$IMAGE"
    --build-arg "BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    --build-arg "VCS_REF=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
)
if [[ -n $TORCH_WHEEL ]]; then
    [[ -f $TORCH_WHEEL ]] || die "TORCH_WHEEL=$TORCH_WHEEL does not exist"
    # The wheel's folder becomes the Dockerfile's `wheels` context, bind-mounted into the torch
    # step only; the exact local version (e.g. 2.13.0+cpu, from the file name) makes pip take
    # that wheel and never PyPI's CUDA build.
    torch_version=$(basename "$TORCH_WHEEL" | cut -d- -f2)
    build_args+=(--build-context "wheels=$(dirname "$TORCH_WHEEL")"
                 --build-arg "TORCH_VERSION=$torch_version")
    log "building $IMAGE with torch $torch_version from $TORCH_WHEEL"
else
    log "building $IMAGE with torch from PyPI"
fi
# The host CA bundle, for pip behind TLS interception: a build secret, present only while the
# pip steps run, never in a layer.
[[ -n $HOST_CA ]] && build_args+=(--secret "id=host_ca,src=$HOST_CA")
# Each build log line gets the seconds since the start, to see which step is slow.
stamp() { while IFS= read -r line; do printf '%4ds %s\n' "$((SECONDS - T_STEP))" "$line"; done; }
buildah bud --pull=never -f "$REPO/Dockerfile" -t "$IMAGE" "${build_args[@]}" "$REPO" 2>&1 \
    | stamp >"$WORK/build.log" \
    || { tail -n 40 "$WORK/build.log" >&2; die "image build failed (log above)"; }
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE: $((size / 1000000)) MB"
lap "build"

# ------------------------------------------------------------------------------ 5. --version
# Every run: read-only root like `docker run --read-only --tmpfs /tmp` (podman's extra tmpfs
# mounts on /run and /var/tmp switched off), no network (the App must work offline).
RUN=(podman run --rm --read-only --read-only-tmpfs=false --tmpfs /tmp --network none)
got=$("${RUN[@]}" "$IMAGE" --version) || die "'$IMAGE --version' exited with status $?"
[[ ${got##* } == "$VERSION" ]] || die "--version printed '$got', expected the version $VERSION"
log "--version: $got"
lap "run --version"

# ------------------------------------------------------------------------------ 6. imports
# The heavy dependencies load (system libraries present) for an arbitrary non-root uid, as with
# `docker run -u $(id -u):$(id -g)`; the image holds no CA bundle; the validator's runtime starts.
"${RUN[@]}" -u 4242:4242 --entrypoint python "$IMAGE" -c '
import os, subprocess, sys
import ants, bids, h5py, jinja2, matplotlib.pyplot, mne, mne_bids, nibabel, nilearn, nipype
import pandas, pybv, scipy, torch, tqdm
import bids_eeg2fmri
assert os.getuid() == 4242, os.getuid()
for leftover in ("/run/host-ca.crt", "/wheels", "/src"):
    assert not os.path.exists(leftover), f"build-time {leftover} left in the image"
print("imports ok: torch", torch.__version__, "| mne", mne.__version__, "| ants", ants.__version__)
out = subprocess.run(["bids-validator-deno", "--version"], capture_output=True, text=True,
                     env=dict(os.environ, NO_COLOR="1"))
assert out.returncode == 0, out.stderr
print("bids-validator-deno", out.stdout.strip())
' || die "the image cannot import its dependencies or run the validator (see above)"
image_user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
[[ -n $image_user && ${image_user%%:*} != 0 && ${image_user%%:*} != root ]] \
    || die "the image runs as root (USER '$image_user')"
lap "run imports"

# ---------------------------------------------------------------------------------- 7. dataset
DATA=$WORK/data
OUT=$WORK/out
[[ -x $VENV/bin/bids-eeg2fmri-simulate ]] \
    || die "no $VENV/bin/bids-eeg2fmri-simulate (run 'make install', or set VENV)"
log "simulating a small dataset with $VENV/bin/bids-eeg2fmri-simulate"
"$VENV/bin/bids-eeg2fmri-simulate" "$DATA" --subjects 1 --volumes 12 --seed 1 \
    >"$WORK/simulate.log" 2>&1 || { tail -n 20 "$WORK/simulate.log" >&2; die "simulator failed"; }
lap "dataset"

# --------------------------------------------------------------------------- 8. BIDS-App run
tree_hash() {  # every path, mode, size, mtime and content below $1
    (cd "$1" && find . -printf '%p %m %s %T@\n' | LC_ALL=C sort && find . -type f -print0 \
        | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum | cut -d' ' -f1
}
before=$(tree_hash "$DATA")
mkdir "$OUT"
# The image's user must be able to write the output folder (as with `-u $(id -u)` for users).
chown "${image_user%%:*}:${image_user#*:}" "$OUT"
log "participant level: ${RUN[*]} -v DATA:/data:ro -v OUT:/out $IMAGE" \
    "/data /out participant --participant-label $PARTICIPANT ${APP_ARGS:-}"
# The official validator runs on the input first (no --skip-bids-validation): it must work
# offline and with a read-only root too. APP_ARGS is split into words on purpose.
set +e
# shellcheck disable=SC2086
"${RUN[@]}" -v "$DATA:/data:ro" -v "$OUT:/out" "$IMAGE" \
    /data /out participant --participant-label "$PARTICIPANT" ${APP_ARGS:-} >"$WORK/app.log" 2>&1
status=$?
set -e
if ((status != 0)); then
    tail -n 40 "$WORK/app.log" >&2
    die "the BIDS-App exited with status $status (output above)"
fi
tail -n 8 "$WORK/app.log"
lap "run participant"

# --------------------------------------------------------------------------------- 9. checks
after=$(tree_hash "$DATA")
[[ $before == "$after" ]] || die "the input dataset changed during the run (hash $before -> $after)"
[[ -f $OUT/dataset_description.json ]] || die "no $OUT/dataset_description.json"
compgen -G "$OUT/logs/config-*.toml" > /dev/null || die "no $OUT/logs/config-*.toml"
python3 - "$OUT/dataset_description.json" "$IMAGE" <<'EOF' \
    || die "dataset_description.json is wrong (see above)"
import json, sys
desc = json.load(open(sys.argv[1]))
container = desc["GeneratedBy"][0].get("Container")
assert desc.get("DatasetType") == "derivative", desc.get("DatasetType")
assert container, "GeneratedBy[0].Container is missing"
assert container.get("Type") == "docker", container
assert container.get("Tag") == sys.argv[2], container
print("GeneratedBy[0]:", json.dumps(desc["GeneratedBy"][0]))
EOF
owner=$(stat -c %u "$OUT/dataset_description.json")
[[ $owner == "${image_user%%:*}" ]] \
    || die "outputs owned by uid $owner, expected the image's user ${image_user%%:*}"
lap "checks"

log "image $IMAGE, $((size / 1000000)) MB"
printf '%s\n' "timings:" "${TIMINGS[@]/#/  }" "  $(printf '%-28s %5ds' total "$((SECONDS - T0))")"
exit 0
}
