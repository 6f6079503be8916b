// Marker layers on the instrument chart's candle series.
//
// Several features mark bars (chart patterns, candlestick patterns, anomalies);
// the library keeps one marker list per series, so each feature owns a named
// layer and the list drawn is their union, in time order.
//
// Features learn what the chart shows from the `chart:bars` event that
// instrument.js dispatches on its root element whenever the bars change
// (first load, timeframe switch, scroll-back, a bar closing live):
//   root.addEventListener("chart:bars", (e) => { const { timeframe, span, bars, layers, chart, candles, reason } = e.detail; ... });
// `reason` is "load", "older" or "closed"; `span` is a bar's length in seconds;
// `bars` is oldest first ({time, open, high, low, close, volume}).
const LW = window.LightweightCharts;

export function markerLayers(series) {
  const plugin = LW.createSeriesMarkers(series, []);
  const layers = new Map();
  function redraw() {
    const all = [...layers.values()].flat();
    all.sort((a, b) => a.time - b.time);
    plugin.setMarkers(all);
  }
  return {
    set(name, markers) {
      layers.set(name, markers);
      redraw();
    },
    clear(name) {
      if (layers.delete(name)) redraw();
    },
    markers(name) {
      return layers.get(name) || [];
    },
  };
}
