"""Schemathesis hooks for Gatehouse.

Schemathesis counts every GraphQL `errors` entry as a server failure, but
Gatehouse reports expected outcomes (MISSING_TOKEN, BAD_USER_INPUT, …) as
errors with stable codes. What must never happen is a 5xx, or an error
without a code.
"""

import schemathesis


@schemathesis.check
def no_5xx_and_coded_errors(ctx, response, case):
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    body = response.json()
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code, f"an error without extensions.code: {error}"


# `JSON` (a passkey's browser response): strings, numbers, booleans, and
# objects shaped like a credential with nonsense in every field.
def _json_literals():
    import json

    import graphql
    from hypothesis import strategies as st

    fields = st.sampled_from(["id", "rawId", "type", "response", "clientDataJSON", "signature", "userHandle"])
    leaves = st.one_of(st.text(max_size=40), st.integers(), st.booleans())
    objects = st.dictionaries(fields, leaves, max_size=5).map(
        lambda d: "{" + " ".join(f"{k}: {json.dumps(v)}" for k, v in d.items()) + "}"
    )
    return st.one_of(leaves.map(json.dumps), objects).map(graphql.parse_value)


schemathesis.graphql.scalar("JSON", _json_literals())
