"""The API's own pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), with their assets served by the service.

FastAPI's default pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from Google),
so on a machine without internet they are blank. Here the same pages are built with
``get_swagger_ui_html`` and ``get_redoc_html`` pointing at vendored copies of the assets under
``static/apidocs/`` (versions and licences in its README), mounted at ``/docs/assets``; the
app is created with FastAPI's own ``/docs`` and ``/redoc`` turned off.

Both pages carry a Content-Security-Policy that lets them load from this origin only: ReDoc's
sidebar shows Redocly's logo from their CDN whatever its options, and the policy stops that
request in the browser (the image hides itself when it fails).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "static" / "apidocs"
ASSETS_PATH = "/docs/assets"
DOCS_PATH, REDOC_PATH = "/docs", "/redoc"
# FastAPI's pages start their UI with an inline script and the UIs set inline styles; ReDoc
# runs its search in a worker made from a blob.
POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    )
)


def install(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and their assets to ``app`` (built with ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="apidocs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        base = _base(request)
        return _own_origin_only(
            get_swagger_ui_html(
                openapi_url=f"{base}{app.openapi_url}",
                title=f"{app.title} — API",
                swagger_js_url=f"{base}{ASSETS_PATH}/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url=f"{base}{ASSETS_PATH}/swagger-ui/swagger-ui.css",
                swagger_favicon_url=f"{base}{ASSETS_PATH}/swagger-ui/favicon-32x32.png",
                # No badge asking the public validator about the spec.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get(REDOC_PATH, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        base = _base(request)
        return _own_origin_only(
            get_redoc_html(
                openapi_url=f"{base}{app.openapi_url}",
                title=f"{app.title} — API reference",
                redoc_js_url=f"{base}{ASSETS_PATH}/redoc/redoc.standalone.js",
                redoc_favicon_url=f"{base}{ASSETS_PATH}/swagger-ui/favicon-32x32.png",
                with_google_fonts=False,
            )
        )


def _own_origin_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = POLICY
    return page


def _base(request: Request) -> str:
    """The path prefix the service is mounted under behind a proxy (``root_path``), as FastAPI's own pages use."""
    return str(request.scope.get("root_path", "")).rstrip("/")
