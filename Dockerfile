# One image for every Tapeline process (web, streams, worker, simulator).
FROM node:20-bookworm-slim AS static
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY . .
COPY --from=static /app/node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js static/vendor/
RUN DEBUG=1 python manage.py collectstatic --noinput -v 0
RUN useradd --create-home tapeline
USER tapeline
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "core.asgi:application"]
