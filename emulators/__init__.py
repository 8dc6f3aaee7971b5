"""The Cleeng and Mollie emulators: real HTTP servers written from the public references."""

# How long an emulator keeps an idle client connection open: longer than HTTP clients keep one
# for reuse (httpx: 5 s). uvicorn's own default is the same 5 s, so the two raced: the server
# closed an idle connection at the moment a client sent on it, and that request was lost
# ("Server disconnected without sending a response").
KEEP_ALIVE_SECONDS = 30
