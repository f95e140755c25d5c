// Starts Swagger UI on /docs. A file rather than an inline script, so the page
// runs under script-src 'self'. The spec URL comes from the page (it honours
// the service's root path).
"use strict";

(() => {
  const root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    // BaseLayout: the standalone layout's top bar needs a second bundle.
    layout: "BaseLayout",
    presets: [window.SwaggerUIBundle.presets.apis],
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // The default posts the spec to a validator on the internet and shows its
    // badge: a request to another host, and nothing to validate offline.
    validatorUrl: null,
  });
})();
