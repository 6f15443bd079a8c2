#!/usr/bin/env bash
# Regenerates the deepcopy methods, CRDs, RBAC and the API reference and fails when that changed
# any file: the committed generated files must match the markers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

generated=(api/v1alpha1/zz_generated.deepcopy.go api/v1beta1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml dist/chart/templates/crds dist/chart/templates/clusterrole.yaml config/prometheus/rules.yaml docs/reference/api.md)
snapshot() { find "${generated[@]}" -type f -print0 2>/dev/null | sort -z | xargs -0 sha256sum; }

before="$(snapshot)"
make --no-print-directory manifests generate >/dev/null
after="$(snapshot)"
if [[ "$before" != "$after" ]]; then
	echo "generated files were stale; 'make manifests generate' has now rewritten them:" >&2
	diff <(echo "$before") <(echo "$after") >&2 || true
	echo "review and commit them." >&2
	exit 1
fi
echo "generated files are current"
