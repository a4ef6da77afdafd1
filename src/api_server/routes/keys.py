"""/admin/keys: API keys. The secret of a key is shown once, when it is created; only its hash is stored."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from api_server.auth import AdminKey, KeyRing
from api_server.deps import SessionDep
from api_server.http_errors import error_responses
from api_server.query_params import KeyId, NoQueryDep
from api_server.services import keys as service
from core.models.api_key import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic

router = APIRouter(prefix="/admin/keys", tags=["admin"], responses=error_responses(401, 403))


@router.post("", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED, responses=error_responses(422))
async def create_key(data: ApiKeyCreate, session: SessionDep, caller: AdminKey, _: NoQueryDep) -> ApiKeyCreated:
    """Create an API key with scopes (read, write, admin, gateway) and optional limits on /v1.

    The answer holds the key's secret: the only time it is shown. Send it as `Authorization: Bearer <secret>`.
    """
    key, secret = await service.create_key(session, data=data, created_by=caller.key_id)
    return ApiKeyCreated.model_validate(ApiKeyPublic.from_key(key).model_dump() | {"secret": secret})


@router.get("", response_model=list[ApiKeyPublic])
async def list_keys(session: SessionDep, _caller: AdminKey, _: NoQueryDep) -> list[ApiKeyPublic]:
    """List the live API keys (never their secrets), oldest first."""
    return [ApiKeyPublic.from_key(key) for key in await service.list_keys(session)]


@router.delete("/{key_id}", response_model=ApiKeyPublic, responses=error_responses(404, 409, 422))
async def revoke_key(key_id: KeyId, request: Request, session: SessionDep, _caller: AdminKey,
                     _: NoQueryDep) -> ApiKeyPublic:
    """Revoke an API key: from now on every request with it gets 401, in every server process."""
    key = await service.revoke_key(session, key_id=key_id)
    keys: KeyRing = request.app.state.keys
    await keys.revoked()
    return ApiKeyPublic.from_key(key)
