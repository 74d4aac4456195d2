"""Schemas of `/me` and `/api-keys` (API.md 5)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from levered_server.schemas.common import Meta, RequestModel


class UserPublic(BaseModel):
    id: str
    email: str
    name: str


class OrganizationPublic(BaseModel):
    id: str
    name: str


class AuthPublic(BaseModel):
    type: str
    api_key_id: str | None
    expires_at: str | None


class MePublic(BaseModel):
    user: UserPublic | None
    organization: OrganizationPublic
    auth: AuthPublic
    meta: Meta


class ApiKeyCreate(RequestModel):
    name: str = Field(min_length=1, max_length=100)

    @field_validator("name", mode="before")
    @classmethod
    def _trim(cls, v: object) -> object:
        return v.strip() if isinstance(v, str) else v


class Creator(BaseModel):
    id: str
    email: str


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: str
    last_used_at: str | None
    created_by: Creator | None


class ApiKeyCreated(ApiKeyPublic):
    secret: str
    meta: Meta


class ApiKeyList(BaseModel):
    api_keys: list[ApiKeyPublic]
    meta: Meta
