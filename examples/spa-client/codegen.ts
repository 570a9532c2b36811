// Generates typed documents for src/operations.graphql from the server's
// checked-in schema, so a breaking schema change fails `npm run check`.
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["src/**/*.graphql"],
  generates: {
    "src/gql/": {
      preset: "client",
      config: { scalars: { DateTime: "string" }, enumsAsTypes: true },
    },
  },
};

export default config;
