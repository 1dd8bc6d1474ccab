#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager once from Debian's own `kubernetes` source package
# (upstream v1.20.2 with vendor/), for the tests' real control plane. Recipe and its caveats:
# shared/notes/kubernetes-test-cluster.md. Skips at once when the binaries are already cached.
#
#   KUBE_TEST_BIN_DIR  where the binaries go (default ~/.cache/draftsmith-kube/v1.20.2), read by
#                      tests/support/kube_cluster.py too; outside the repository so every clone reuses them
#
# Cold: ~4-5 min on 2 idle cores (21 min wall, 11 min CPU, measured niced beside 4 other sessions),
# ~1.4 GB RAM, ~2.2 GB temporary disk (removed afterwards).
set -euo pipefail

VERSION=v1.20.2
BIN_DIR="${KUBE_TEST_BIN_DIR:-$HOME/.cache/draftsmith-kube/$VERSION}"

if [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ] && command -v etcd >/dev/null 2>&1; then
  echo "kube test binaries cached in $BIN_DIR"
  exit 0
fi

apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"; }

# Build tools and the datastore; reflect2 1.0.2 replaces the vendored 1.0.1, which crashes the apiserver
# under Go >= 1.18 (fatal fault in UnsafeMapType.UnsafeIterate); dpkg-dev unpacks the source package.
need=()
for pkg in golang-go rsync jq etcd-server golang-github-modern-go-reflect2-dev dpkg-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt_get update -qq
  apt_get install -y -qq "${need[@]}" >/dev/null
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/draftsmith-kube-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# A private apt configuration with deb-src lines for the archives the machine already uses, so the
# machine's own sources are left untouched.
mkdir -p "$work/apt/lists/partial"
python3 - "$work/apt/sources.list" <<'PY'
import glob, re, sys
entries = []
for path in glob.glob("/etc/apt/sources.list.d/*.sources"):
    for stanza in open(path).read().split("\n\n"):
        fields = dict(re.findall(r"^(\w[\w-]*):\s*(.+)$", stanza, re.M))
        if "deb" not in fields.get("Types", "").split():
            continue
        for uri in fields.get("URIs", "").split():
            for suite in fields.get("Suites", "").split():
                entries.append(f"deb-src [signed-by={fields.get('Signed-By', '')}] {uri} {suite} {fields.get('Components', 'main')}")
for path in ["/etc/apt/sources.list", *glob.glob("/etc/apt/sources.list.d/*.list")]:
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        continue
    entries += [re.sub(r"^deb\s", "deb-src ", l) for l in lines if re.match(r"^deb\s", l)]
open(sys.argv[1], "w").write("\n".join(entries) + "\n")
PY
apt_opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$work/apt/lists")
apt_get "${apt_opts[@]}" update -qq
(cd "$work" && apt_get "${apt_opts[@]}" source -qq kubernetes >/dev/null)
src="$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)"

rm -rf "$src/vendor/github.com/modern-go/reflect2"
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"

# There is no .git in a source package; the build reads its version from this file instead.
cat >"$src/version.env" <<VER
KUBE_GIT_VERSION='$VERSION'
KUBE_GIT_MAJOR='1'
KUBE_GIT_MINOR='20'
KUBE_GIT_TREE_STATE='archive'
VER

# Nice: the build shares the machine's cores with everything else on it.
(cd "$src" && GOCACHE="$work/gocache" GOPATH="$work/gopath" KUBE_GIT_VERSION_FILE=version.env \
  CGO_ENABLED=0 GOPROXY=off GOFLAGS= nice -n 10 make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1) \
  || { tail -n 40 "$work/build.log"; exit 1; }

mkdir -p "$BIN_DIR"
for bin in kube-apiserver kube-controller-manager; do
  install -m 0755 "$(find "$src/_output" -type f -name "$bin" | head -n1)" "$BIN_DIR/$bin.tmp"
  mv "$BIN_DIR/$bin.tmp" "$BIN_DIR/$bin"
done
echo "kube test binaries built into $BIN_DIR"
