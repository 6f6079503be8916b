"""The built-in exchange simulator (`manage.py simulate_exchange`).

A process of its own (aiohttp, numpy, no models): nothing in production imports
this package (the import-linter contracts in `pyproject.toml`). It imports
`marketdata`'s calendar and universe and `streaming.recording`'s format.

One aiohttp application on one loopback port speaks three vendors' real wire
protocols on their real paths, so provider adapters and official clients
(alpaca-py) work against it unchanged:

- Alpaca: stream `/v2/{iex,sip,delayed_sip,test}`, `/v1beta3/crypto/us` (JSON
  or msgpack; `alpaca_stream.py`, its data messages in `alpaca_frames.py`);
  REST `/v2/stocks/...` bars and latest trades/quotes/bars,
  `/v1beta3/crypto/us/...` (`alpaca_rest.py`); what both share in
  `alpaca_common.py`.
- Finnhub (`finnhub.py`): stream `/?token=`; REST `/api/v1/quote`, `search`,
  `stock/candle`.
- Binance: streams `/ws/...`, `/stream?streams=...` (`binance_stream.py`);
  REST `/api/v3/klines`, `ping`, `time` (`binance_rest.py`); what both (and
  the snapshots) share in `binance_common.py`.
- Snapshots (`snapshots.py`), control (`control.py`): `/_sim/health`,
  `/_sim/faults`, `/_sim/clock`.

Every price comes from `prices.py` (deterministic per seed and symbol, random
access by minute), the live tape from `tape.py` (trades that realize each
minute bar exactly), running candles from `candles.py`. Faults are in
`faults.py` (global or per protocol, with per-connection symbol caps).

Modules depend downward only (checked by import-linter): `management` (the
command) -> `server` (`Simulator`: the process, its ticker and threads) ->
`app` (the application factory: every protocol's routes) | `replay` (serves a
recording) -> protocol modules -> `session` (the session base class and the
per-tick cache) | `wire` (frame and response helpers, the `SIM` app key) ->
`state` (`ExchangeState`, what sessions and handlers share) -> `faults`,
`candles`, `tape`, `prices`. Test fixtures live in `tests/plugins/simulator.py`.
"""
