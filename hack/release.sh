#!/usr/bin/env bash
# Writes every artifact of a release into dist/release/, with checksums:
# the image (an OCI image layout archive for linux/amd64 and linux/arm64),
# the chart packaged by Helm with its appVersion and image set, the
# installer YAML, the kubectl plugin's archives and its krew manifest.
#   hack/release.sh v0.2.0 [image repository]
set -euo pipefail

version="${1:?usage: hack/release.sh VERSION (e.g. v0.2.0) [IMAGE_REPO]}"
[[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "VERSION must look like v1.2.3, not $version" >&2; exit 1; }
repo="${2:-ghcr.io/exokey/exokey}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/dist/release"
bin="$root/bin"
rm -rf "$out"
mkdir -p "$out"

echo "the kubectl plugin's archives and krew manifest ..."
"$root/hack/krew-manifest.sh" "$version"
cp "$root/dist/krew/exokey.yaml" "$out/krew-exokey.yaml"

echo "the image ..."
(cd "$root" && go run ./hack/image --version "$version" --ref "$repo:$version" --out "$out/exokey-image-$version.tar")

echo "the chart ..."
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp -r "$root/dist/chart" "$stage/exokey"
sed -i -e "s|^  repository: .*|  repository: $repo|" -e "s|^  tag: .*|  tag: \"$version\"|" "$stage/exokey/values.yaml"
"$bin/helm4" package "$stage/exokey" --version "${version#v}" --app-version "$version" --destination "$out"

echo "the installer ..."
make -C "$root" --no-print-directory build-installer IMG="$repo:$version" >/dev/null
cp "$root/dist/install.yaml" "$out/install.yaml"

(cd "$out" && sha256sum -- * > SHA256SUMS)
echo "wrote dist/release/:"
(cd "$out" && ls -l)
