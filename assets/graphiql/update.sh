#!/usr/bin/env bash
# Re-vendors GraphiQL and React from the npm registry into this folder, so
# the playground loads nothing from outside the server. Then rebuild.
# Usage: assets/graphiql/update.sh [GRAPHIQL_VERSION] [REACT_VERSION]
set -euo pipefail
cd "$(dirname "$0")"
graphiql=${1:-4.1.2}
react=${2:-18.3.1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "graphiql@$graphiql" "react@$react" "react-dom@$react" >/dev/null)
unpack() { mkdir -p "$tmp/$1" && tar -xzf "$tmp/$2" -C "$tmp/$1"; }
unpack graphiql "graphiql-$graphiql.tgz"
unpack react "react-$react.tgz"
unpack react-dom "react-dom-$react.tgz"

# The source map is not vendored, so drop the comment that points to it.
grep -v '^//# sourceMappingURL=' "$tmp/graphiql/package/dist/index.umd.js" > graphiql.min.js
cp "$tmp/graphiql/package/dist/style.css" graphiql.min.css
cp "$tmp/react/package/umd/react.production.min.js" react.production.min.js
cp "$tmp/react-dom/package/umd/react-dom.production.min.js" react-dom.production.min.js
cp "$tmp/graphiql/package/LICENSE" LICENSE.graphiql
cp "$tmp/react/package/LICENSE" LICENSE.react

cat > VERSIONS.md <<MD
# Vendored playground assets

Fetched from the npm registry by \`update.sh\`; served by \`src/http/playground.rs\`.

| file | package | version | licence |
|---|---|---|---|
| graphiql.min.js (dist/index.umd.js) | graphiql | $graphiql | MIT, see LICENSE.graphiql |
| graphiql.min.css (dist/style.css) | graphiql | $graphiql | MIT, see LICENSE.graphiql |
| react.production.min.js | react | $react | MIT, see LICENSE.react |
| react-dom.production.min.js | react-dom | $react | MIT, see LICENSE.react |

SHA-256:

\`\`\`
$(sha256sum graphiql.min.js graphiql.min.css react.production.min.js react-dom.production.min.js)
\`\`\`
MD
echo "vendored graphiql $graphiql and react $react"
