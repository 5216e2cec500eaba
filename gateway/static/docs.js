"use strict";
// The API docs: Swagger UI (vendored, see static/vendor/README.md) over this gateway's own OpenAPI document, with
// "Try it out" sending requests to this gateway. No validator badge: it would call an outside service.
(() => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    persistAuthorization: false,
    displayRequestDuration: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
