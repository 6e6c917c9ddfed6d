// While a request is being checked or imported, ask the portal every few seconds whether it
// moved on, and reload the page when it did. Without JavaScript, reloading by hand does the same.
(function () {
  "use strict";
  const script = document.getElementById("live-script");
  if (!script) return;
  const url = script.dataset.statusUrl;
  const seenEvents = parseInt(script.dataset.events, 10);
  const seenState = script.dataset.state;
  const seenNextAttempt = script.dataset.nextAttempt || "";
  let delay = 3000;

  function check() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        const moved = status && (status.state !== seenState || status.events !== seenEvents ||
          (status.next_attempt_at || "") !== seenNextAttempt);
        if (moved) {
          window.location.reload();
          return;
        }
        delay = Math.min(delay * 1.2, 15000);
        window.setTimeout(check, delay);
      })
      .catch(function () { window.setTimeout(check, 15000); });
  }
  window.setTimeout(check, delay);
})();
