// Swagger UI over this server's OpenAPI document. A file of its own, not an inline script: the page's
// content security policy allows scripts from this server only.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
