"""A trivial endpoint for bench/webhook_bench.py: the same server and middleware, no work.

Async, like the webhook views it is compared with, so the comparison charges neither side
a thread hop the other does not make. Routed only when BENCH_TRIVIAL_VIEW is true."""

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
async def noop(request):
    request.read()
    return HttpResponse(status=204)
