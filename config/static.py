"""WhiteNoise for both handler modes.

WhiteNoise's middleware is sync-only, so under ASGI every request, static or not,
would hop to the one thread-sensitive executor and back. This subclass looks the
path up (a dict read) on the event loop and only hands a real static file to a thread.
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.templatetags.static import static
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response, *args, **kwargs) -> None:
        super().__init__(get_response, *args, **kwargs)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request):
        static_file = (self.find_file(request.path_info) if self.autorefresh
                       else self.files.get(request.path_info))
        if static_file is not None:
            return await sync_to_async(self._serve_read, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)

    def _serve_read(self, static_file, request) -> HttpResponse:
        # The admin's static files are small: read them here, in the thread, rather than
        # have the async handler drain a synchronous file iterator chunk by chunk.
        streamed = self.serve(static_file, request)
        try:
            response = HttpResponse(b"".join(streamed.streaming_content), status=streamed.status_code)
        finally:
            streamed.close()
        for header, value in streamed.items():
            response[header] = value
        return response


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """/favicon.ico, which browsers ask for on pages that link no icon: the static one (302)."""
    return HttpResponseRedirect(static("favicon.ico"))
