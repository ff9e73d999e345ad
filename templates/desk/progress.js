/* The live progress of a send, on the desk. Every block marked data-live="yes" asks its
   JSON route (data-progress) every two seconds and puts the answer's texts in its
   data-field elements and the <progress> element. It stops when the issue is no longer
   live, when the session has ended (the route then leads to the sign-in page), and after
   a few failed requests in a row; the numbers on the page stay as they were. */
(function () {
  "use strict";
  var PERIOD_MS = 2000;
  var TRIES = 3;

  function show(box, data) {
    var bar = box.querySelector("progress");
    if (bar) {
      if (data.total > 0) {
        bar.max = data.total;
        bar.value = data.done;
      } else {
        bar.removeAttribute("value");
      }
    }
    Object.keys(data.shown).forEach(function (key) {
      box.querySelectorAll('[data-field="' + key + '"]').forEach(function (field) {
        if (field.textContent !== data.shown[key]) {
          field.textContent = data.shown[key];
        }
      });
    });
    box.setAttribute("data-state", data.state);
    // The state shown elsewhere on the page (its facts) moves with the send.
    document.querySelectorAll('[data-state-of="' + box.getAttribute("data-progress") + '"]')
      .forEach(function (badge) {
        if (badge.textContent !== data.state) {
          badge.textContent = data.state;
          badge.className = "state state-" + data.state;
        }
      });
  }

  function stop(box, why) {
    box.setAttribute("data-live", "no");
    if (why) {
      box.querySelectorAll('[data-field="announce"]').forEach(function (field) {
        field.textContent = why;
      });
    }
  }

  function watch(box) {
    var failures = 0;
    var url = box.getAttribute("data-progress");

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.redirected) {
            throw new Error("signed out");
          }
          if (!response.ok) {
            throw new Error("status " + response.status);
          }
          return response.json();
        })
        .then(function (data) {
          failures = 0;
          show(box, data);
          if (data.live) {
            window.setTimeout(poll, PERIOD_MS);
          } else {
            stop(box, "");
          }
        })
        .catch(function (error) {
          failures += 1;
          if (error.message === "signed out") {
            stop(box, "Live updates stopped: the session has ended. Reload to sign in.");
          } else if (failures >= TRIES) {
            stop(box, "Live updates stopped: the desk did not answer. Reload to try again.");
          } else {
            window.setTimeout(poll, PERIOD_MS * (failures + 1));
          }
        });
    }

    window.setTimeout(poll, PERIOD_MS);
  }

  document.querySelectorAll('[data-progress][data-live="yes"]').forEach(function (box) {
    if (box.getAttribute("data-watched") !== "yes") {
      box.setAttribute("data-watched", "yes");
      watch(box);
    }
  });
})();
