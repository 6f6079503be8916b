// Test hooks: objects the browser tests and the console read (the market
// socket, the chart, what the axis drew, the candle markers), put on `window`
// only when the server says so (`<body data-test-hooks="1">`, the
// BROWSER_TEST_HOOKS setting). Off, the page keeps them to itself.
export function hooksOn() {
  return document.body?.dataset.testHooks === "1";
}

// `window[name] = value` with the hooks on; returns `value` either way.
export function expose(name, value) {
  if (hooksOn()) window[name] = value;
  return value;
}
