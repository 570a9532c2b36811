// Mounts GraphiQL against this server's /graphql, with the session header
// ready to fill in. The placeholder is never sent, so `login` works before
// a token is pasted.
(function () {
  var PLACEHOLDER = "Bearer <paste the token from login or register>";
  var base = GraphiQL.createFetcher({ url: new URL("/graphql", window.location.href).href });
  function fetcher(params, options) {
    options = options || {};
    var headers = Object.assign({}, options.headers || {});
    var auth = headers.Authorization || headers.authorization;
    if (!auth || auth.indexOf("<") !== -1 || auth.trim() === "Bearer") {
      delete headers.Authorization;
      delete headers.authorization;
    }
    return base(params, Object.assign({}, options, { headers: headers }));
  }
  var defaultQuery = [
    "# Welcome to Gatehouse.",
    "#",
    "# 1. Run Register (or Login) below.",
    "# 2. Open Headers (at the bottom) and put the token from the answer in",
    "#    place of the placeholder: {\"Authorization\": \"Bearer gth_…\"}",
    "# 3. Run Me. Sessions end after inactivity, at a hard cap, or on logout.",
    "",
    "mutation Register {",
    "  register(input: {email: \"ada@example.com\", password: \"correct horse battery\"}) {",
    "    token",
    "    session { expiresAt }",
    "  }",
    "}",
    "",
    "mutation Login {",
    "  login(input: {email: \"ada@example.com\", password: \"correct horse battery\"}) {",
    "    token",
    "    session { expiresAt }",
    "  }",
    "}",
    "",
    "query Me {",
    "  me {",
    "    user { email }",
    "    session { expiresAt idleExpiresAt absoluteExpiresAt }",
    "    sessions { id current userAgent lastActivityAt }",
    "  }",
    "}",
    ""
  ].join("\n");
  var query = new URLSearchParams(window.location.search).get("query");
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultQuery: defaultQuery,
    query: query || undefined,
    defaultHeaders: JSON.stringify({ Authorization: PLACEHOLDER }, null, 2),
    shouldPersistHeaders: false,
    defaultEditorToolsVisibility: "headers"
  }));
})();
