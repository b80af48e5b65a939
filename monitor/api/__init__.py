"""The Linq partner API: the HTTP client and the payload parser. API drift stops here."""
