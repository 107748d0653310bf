FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir .

COPY . .
# collectstatic needs settings but no database or secrets of the deployment.
RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput --verbosity 0

RUN useradd --system --home /app voicedesk && chown -R voicedesk /app
USER voicedesk
EXPOSE 8000
CMD ["uvicorn", "config.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--no-server-header"]
