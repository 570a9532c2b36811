// Generates typed documents for src/operations.graphql from the server's
// checked-in schema, so a breaking schema change fails `npm run check`.
// It also writes src/gql/persisted-documents.json: the manifest that
// GATEHOUSE_TRUSTED_DOCUMENTS runs in production.
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../../schema.graphql",
  // `.js` in generated imports, as Node's ESM resolution needs.
  emitLegacyCommonJSImports: false,
  documents: ["src/**/*.graphql"],
  generates: {
    "src/gql/": {
      preset: "client",
      presetConfig: {
        // Each document carries `__meta__.hash`, the SHA-256 of its
        // manifest text; fragment masking is left off to keep it small.
        persistedDocuments: { hashAlgorithm: "sha256" },
        fragmentMasking: false,
      },
      config: { scalars: { DateTime: "string", JSON: "unknown" }, enumsAsTypes: true },
    },
  },
};

export default config;
