"""/docs: the OpenAPI document and Swagger UI, working with no internet.

sanic-ext's page loads Swagger UI from a CDN, so without one it stayed blank
("SwaggerUIBundle is not defined"). Here the page (app/docs/swagger.html) loads the assets
from this server: the swagger-ui-bundle PyPI package ships them, pinned by the lock file,
so a production install has them without node. DOCS_ENABLED=false removes /docs whole.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from sanic import Blueprint, Request, Sanic
from sanic.response import HTTPResponse, file
from sanic_ext.extensions.openapi import openapi

from app.errors import NotFound

PAGE = Path(__file__).resolve().parent.parent / "docs" / "swagger.html"
ASSETS = Path(swagger_ui_bundle.swagger_ui_path)
# "swagger-ui-4.15.5": the version is in every asset URL, so browsers may keep them.
VERSION = ASSETS.name.removeprefix("swagger-ui-")
TYPES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
}
HEADERS = {"Cache-Control": "public, max-age=31536000, immutable"}

bp = Blueprint("docs_assets", url_prefix="/docs/assets")


@bp.get("/<version:str>/<name:str>")
async def asset(request: Request, version: str, name: str) -> HTTPResponse:
    # Only the three files by name: no request path reaches the filesystem.
    if version != VERSION or name not in TYPES:
        raise NotFound("Not found")
    return await file(ASSETS / name, mime_type=TYPES[name], headers=HEADERS)


def configure(app: Sanic, enabled: bool) -> None:
    """Before sanic-ext starts: our page and assets, or no /docs at all."""
    app.config.OAS = enabled
    app.config.OAS_UI_REDOC = False
    app.config.OAS_PATH_TO_SWAGGER_HTML = str(PAGE)
    app.config.OAS_UI_SWAGGER_VERSION = VERSION


def install(app: Sanic, enabled: bool) -> None:
    if enabled:
        app.blueprint(bp)
        openapi.exclude(bp=bp)
