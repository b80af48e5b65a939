"""The pre-send gate: "may I send on this line?" answered from memory, as JSON over HTTP."""
