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
