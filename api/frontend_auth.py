"""Who may call the front-end API (`/purchases`, `/payment-details`) and for which customer.

The scheme, and why:

1. **The publisher's backend authenticates with an API key**: `Authorization: Bearer <key>`,
   compared in constant time with every key in `FRONTEND_API_KEYS` (several at once, so a key
   can be rotated without downtime). The connector moves money on Cleeng's behalf; like
   Cleeng's own Core API (a secret `X-Publisher-Token` on every call) it is a
   server-to-server API, so the key never reaches a browser. Missing or wrong key: 401 with
   `WWW-Authenticate: Bearer`.

2. **Every call names the customer it acts for**, and ownership is checked against that
   customer:

   - with `CLEENG_CUSTOMER_JWT_KEYS` set, the customer's own Cleeng JWT travels in
     `X-Cleeng-Customer-Token`. Cleeng issues it when the customer logs in (MediaStore API
     login, registration or SSO); its payload carries `customerId`, `publisherId` and an
     expiry (developers.cleeng.com: "Authorisation"), and Cleeng publishes the keys that verify
     it as a JWKS (`/.well-known/jwks.json`, "JSON Web Key Set"). The token's signature (an
     asymmetric algorithm pinned per key), expiry and `publisherId` (= `CLEENG_PUBLISHER_ID`)
     are checked; its `customerId` is the customer. This is the binding Cleeng itself vouches
     for: a compromised publisher backend still cannot act for a customer who did not log in.
   - without JWT keys, the publisher's backend states the customer in
     `X-Cleeng-Customer-Id`; the API key is then the whole proof. That suits publishers whose
     customers log in with the publisher's own identity provider.

   Core API 3.1 documents no customer look-up the connector may call (docs/cleeng-contract.md),
   so the JWT is the only way Cleeng confirms a customer *before* anything starts; without it
   a card change for a customer Cleeng does not know is still refused by Cleeng when the new
   details are stored (and the verification amount is refunded).

3. **Ownership** (in the routes): a purchase only for an order whose `customerId` (read from
   Cleeng) is the caller's customer; purchase state only for that customer; a card change or
   its state only for the caller's own customer id. Someone else's order answers exactly what
   a missing one answers (422 on POST, 404 on GET), so an order's existence never leaks;
   a card change for another customer id is 403: that decision depends on the ids in the
   request alone, not on what exists.

`redirectUrl` must point into `FRONTEND_REDIRECT_ORIGINS` (see `redirect_allowed`).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

import jwt
from fastapi import Depends, Header, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.schemas import field_error, int32_id
from settings import Settings

logger = logging.getLogger(__name__)

CUSTOMER_ID_HEADER = "X-Cleeng-Customer-Id"
CUSTOMER_TOKEN_HEADER = "X-Cleeng-Customer-Token"
# Clock skew tolerated on a customer JWT's `exp` / `nbf` (Cleeng's tokens live 15 minutes).
JWT_LEEWAY_SECONDS = 30

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="FrontendApiKey",
    description="A key from FRONTEND_API_KEYS (sandbox mode: the documented sandbox key)",
)


@dataclass(frozen=True)
class Caller:
    """An authenticated front-end call: the Cleeng customer it acts for, and how we know."""

    customer_id: str
    proof: str  # "customer-jwt" or "publisher-key"


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": 'Bearer realm="cleeng-mollie-connector"'},
    )


class FrontendAuth:
    """Checks a front-end call's key and establishes its customer; built once per app."""

    def __init__(self, settings: Settings) -> None:
        self._keys = tuple(key.encode() for key in settings.effective_frontend_api_keys)
        self._jwt_keys = settings.customer_jwt_keys()
        self._publisher_id = settings.cleeng_publisher_id

    @property
    def uses_customer_jwt(self) -> bool:
        return bool(self._jwt_keys)

    def key_is_valid(self, presented: str) -> bool:
        candidate = presented.encode()
        # Compare against every key, always, so the time taken says nothing about which key
        # (or how much of one) matched.
        matches = [hmac.compare_digest(candidate, key) for key in self._keys]
        return any(matches)

    def customer_from_jwt(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise unauthorized(f"{CUSTOMER_TOKEN_HEADER} is not a JWT") from error
        kid = header.get("kid")
        candidates = [k for k in self._jwt_keys if kid is None or k.key_id in (kid, None)]
        for candidate in candidates:
            try:
                claims = jwt.decode(
                    token,
                    candidate.key,
                    # The algorithm comes from our key, never from the token's header: no
                    # "none", no HMAC keyed with a public key.
                    algorithms=[candidate.algorithm_name],
                    options={"require": ["exp"], "verify_aud": False},
                    leeway=JWT_LEEWAY_SECONDS,
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError as error:
                raise unauthorized(f"{CUSTOMER_TOKEN_HEADER} has expired") from error
            except jwt.PyJWTError as error:
                raise unauthorized(f"{CUSTOMER_TOKEN_HEADER} is invalid: {error}") from error
            return self._customer_claim(claims)
        raise unauthorized(f"{CUSTOMER_TOKEN_HEADER}: signature not made by Cleeng's keys")

    def _customer_claim(self, claims: dict[str, Any]) -> str:
        if int32_id(claims.get("publisherId")) != str(self._publisher_id):
            raise unauthorized(f"{CUSTOMER_TOKEN_HEADER} was issued for another publisher")
        customer_id = int32_id(claims.get("customerId"))
        if customer_id is None:
            raise unauthorized(f"{CUSTOMER_TOKEN_HEADER} carries no valid customerId")
        return customer_id


def frontend_auth(request: Request) -> FrontendAuth:
    found: FrontendAuth = request.app.state.frontend_auth
    return found


async def frontend_caller(
    auth: Annotated[FrontendAuth, Depends(frontend_auth)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    # Not named `customer_id`: FastAPI would take it for the path parameter of that name.
    named_customer: Annotated[
        str | None,
        Header(
            alias=CUSTOMER_ID_HEADER,
            description="The Cleeng customer the publisher's backend acts for (when customer "
            "JWTs are not configured)",
        ),
    ] = None,
    customer_token: Annotated[
        str | None,
        Header(
            alias=CUSTOMER_TOKEN_HEADER,
            description="The customer's Cleeng JWT (required when CLEENG_CUSTOMER_JWT_KEYS "
            "is configured)",
        ),
    ] = None,
) -> Caller:
    """The dependency every front-end route takes: 401 unless the key is right and the
    customer is established."""
    if credentials is None:
        raise unauthorized("missing API key: send Authorization: Bearer <key>")
    if not auth.key_is_valid(credentials.credentials):
        raise unauthorized("invalid API key")
    if auth.uses_customer_jwt:
        if customer_token is None:
            raise unauthorized(f"missing {CUSTOMER_TOKEN_HEADER}: the customer's Cleeng JWT")
        customer = auth.customer_from_jwt(customer_token)
        if named_customer is not None and int32_id(named_customer) != customer:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"{CUSTOMER_ID_HEADER} is not the customer of {CUSTOMER_TOKEN_HEADER}",
            )
        return Caller(customer_id=customer, proof="customer-jwt")
    if customer_token is not None:
        # Never accept a token we cannot verify as if it proved something.
        raise unauthorized(
            f"{CUSTOMER_TOKEN_HEADER} cannot be verified here (CLEENG_CUSTOMER_JWT_KEYS is not "
            f"configured); send {CUSTOMER_ID_HEADER}"
        )
    if named_customer is None:
        raise unauthorized(f"missing {CUSTOMER_ID_HEADER}: name the customer you act for")
    named = int32_id(named_customer)
    if named is None:
        raise unauthorized(f"{CUSTOMER_ID_HEADER} must be a Cleeng customer id (positive int32)")
    return Caller(customer_id=named, proof="publisher-key")


def require_allowed_redirect(url: str, settings: Settings) -> None:
    """422 naming `redirectUrl` unless it points into a configured publisher origin: Mollie
    sends the shopper wherever it says, so it must never be a stranger's site."""
    origins = settings.effective_redirect_origins
    if not redirect_allowed(url, origins):
        # The origins are the publisher's own public sites, not secrets: naming them lets the
        # front-end developer see at once which one the URL missed.
        allowed = ", ".join(origins) if origins else "none configured"
        raise field_error(
            ("body", "redirectUrl"),
            "must point to one of the publisher origins configured in "
            f"FRONTEND_REDIRECT_ORIGINS (allowed now: {allowed})",
            url,
        )


def redirect_allowed(url: str, origins: tuple[str, ...]) -> bool:
    """Does `url` point into one of the allowed origins (scheme, host and port all equal)?

    Anything a browser could read differently from Python is refused outright: user info
    (`https://shop.example@evil.example`), backslashes (browsers read `\\` as `/`, so
    `https://evil.example\\@shop.example` goes to evil.example) and control characters.
    """
    if any(ord(char) <= 0x20 or ord(char) == 0x7F or char == "\\" for char in url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return False
    default_port = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    suffix = f":{port}" if port is not None and port != default_port else ""
    return f"{parts.scheme}://{host}{suffix}" in origins
