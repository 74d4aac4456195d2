"""`/api/v2/me` and `/api/v2/api-keys` (API.md 5)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from levered_server.api.bodies import body_doc, json_body
from levered_server.api.deps import Context, Ctx
from levered_server.schemas.common import Deleted
from levered_server.schemas.identity import ApiKeyCreate, ApiKeyCreated, ApiKeyList, MePublic
from levered_server.services import identity

router = APIRouter(prefix="/api/v2", tags=["identity"])


@router.get("/me", operation_id="getMe", response_model=MePublic)
def get_me(ctx: Ctx) -> MePublic:
    """Who is calling: user, organization, kind of credential."""
    assert ctx.caller is not None
    return ctx.wrap(MePublic, identity.me(store=ctx.runtime.store, caller=ctx.caller))


def _manager(ctx: Ctx) -> Context:
    assert ctx.caller is not None
    identity.require_key_manager(ctx.caller,
                                 allow_api_keys=ctx.runtime.settings.api_keys_manage_keys)
    return ctx


Manager = Annotated[Context, Depends(_manager)]


@router.post("/api-keys", operation_id="createApiKey", status_code=201,
             response_model=ApiKeyCreated, openapi_extra=body_doc(ApiKeyCreate))
def create_api_key(ctx: Manager,
                   body: Annotated[ApiKeyCreate, Depends(json_body(ApiKeyCreate))]
                   ) -> ApiKeyCreated:
    """Create an API key; the secret is shown only in this response."""
    assert ctx.caller is not None
    key = identity.add_api_key(store=ctx.runtime.store, caller=ctx.caller, name=body.name)
    return ctx.wrap(ApiKeyCreated, key)


@router.get("/api-keys", operation_id="listApiKeys", response_model=ApiKeyList)
def list_api_keys(ctx: Manager) -> ApiKeyList:
    """List the organization's live API keys, newest first."""
    assert ctx.caller is not None
    keys = identity.list_api_keys(store=ctx.runtime.store, caller=ctx.caller)
    return ctx.wrap(ApiKeyList, {"api_keys": keys})


@router.delete("/api-keys/{key_id}", operation_id="revokeApiKey", response_model=Deleted)
def revoke_api_key(ctx: Manager, key_id: str) -> Deleted:
    """Revoke an API key immediately."""
    assert ctx.caller is not None
    kid = identity.revoke_api_key(store=ctx.runtime.store, caller=ctx.caller, key_id=key_id)
    return ctx.wrap(Deleted, {"id": kid, "deleted": True})
