"""The built-in exchange simulator (`manage.py simulate_exchange`).

One aiohttp application on one loopback port speaks three vendors' real wire
protocols on their real paths, so provider adapters and official clients
(alpaca-py) work against it unchanged:

- Alpaca (`alpaca.py`): stream `/v2/{iex,sip,delayed_sip,test}`,
  `/v1beta3/crypto/us` (JSON or msgpack); REST `/v2/stocks/...` bars and
  latest trades/quotes/bars, `/v1beta3/crypto/us/...`.
- Finnhub (`finnhub.py`): stream `/?token=`; REST `/api/v1/quote`, `search`,
  `stock/candle`.
- Binance (`binance.py`): streams `/ws/...`, `/stream?streams=...`; REST
  `/api/v3/klines`.
- Control (`control.py`): `/_sim/health`, `/_sim/faults`, `/_sim/clock`.

Every price comes from `prices.py` (deterministic per seed and symbol, random
access by minute), the live tape from `tape.py` (trades that realize each
minute bar exactly), running candles from `candles.py`. Faults are in
`faults.py` (global or per protocol, with per-connection symbol caps);
recording format and replay in `replay.py`; the server and its ticker in
`server.py`, the session base class (output queue, writer, reading loop,
freeze) in `session.py`. Test fixtures live in `tests/plugins/simulator.py`.
"""
