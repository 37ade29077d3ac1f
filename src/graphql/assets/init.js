// Bootstrap for the gateway's GraphiQL page. Loaded from /graphiql/assets/ so the
// page needs no inline script. Its settings come from the JSON data block
// <script type="application/json" id="graphiql-settings">, written by graphiql.rs.
(function () {
  'use strict';

  var root = document.getElementById('graphiql');
  function fail(message) {
    root.textContent = 'GraphiQL failed to start: ' + message;
  }

  var settings;
  try {
    settings = JSON.parse(document.getElementById('graphiql-settings').textContent);
  } catch (e) {
    fail('unreadable settings (' + e + ')');
    return;
  }
  if (typeof React === 'undefined' || typeof ReactDOM === 'undefined' || typeof GraphiQL === 'undefined') {
    fail('a script asset did not load');
    return;
  }

  // react-remove-scroll (used by GraphiQL's dialogs) injects a <style> element and
  // tags it with this global's value, which the page's CSP allows as a style nonce.
  if (typeof settings.styleNonce === 'string') {
    window.__webpack_nonce__ = settings.styleNonce;
  }

  // An absolute URL built from the page's own location, so a relative endpoint
  // such as "/graphql" resolves against the gateway that served this page.
  var endpoint = new URL(settings.endpoint, window.location.href);
  var fetcherOptions = { url: endpoint.href };
  // Subscriptions go over a WebSocket to the same endpoint (graphql-transport-ws). A
  // socket carries no headers, so the token goes in connection_init: the default
  // headers' Authorization (the dev token on the embedded default).
  var socket = new URL(endpoint.href);
  socket.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';
  fetcherOptions.subscriptionUrl = socket.href;
  if (typeof settings.headers === 'string') {
    try {
      var initial = JSON.parse(settings.headers);
      if (initial && typeof initial.Authorization === 'string') {
        fetcherOptions.wsConnectionParams = { Authorization: initial.Authorization };
      }
    } catch (e) {
      // Reported by GraphiQL when the headers are used.
    }
  }
  var fetcher;
  try {
    fetcher = GraphiQL.createFetcher(fetcherOptions);
  } catch (e) {
    // Queries and mutations still work without the WebSocket client.
    fetcher = GraphiQL.createFetcher({ url: endpoint.href });
  }

  // GraphiQL fires its first introspection before the headers editor exists, so that
  // request carries no headers. Give introspection requests that come without headers
  // (that first one, or any sent while the headers pane is empty) the default headers,
  // so an endpoint that requires a token still yields a schema for docs and completion.
  // Queries the user runs send exactly what the headers pane holds.
  var introspectionHeaders = null;
  if (typeof settings.headers === 'string') {
    try {
      var parsed = JSON.parse(settings.headers);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        introspectionHeaders = parsed;
      }
    } catch (e) {
      // Not JSON: GraphiQL itself reports invalid headers when they are used.
    }
  }
  var introspectionName = 'IntrospectionQuery';
  function gatewayFetcher(params, options) {
    if (introspectionHeaders && params && params.operationName === introspectionName &&
        !(options && options.headers)) {
      options = Object.assign({}, options, { headers: introspectionHeaders });
    }
    return fetcher(params, options);
  }

  var props = {
    fetcher: gatewayFetcher,
    // Never write headers (which may hold a bearer token) to localStorage.
    shouldPersistHeaders: false
  };
  var storage = headerlessStorage();
  if (storage) {
    props.storage = storage;
  }
  if (typeof settings.headers === 'string') {
    props.defaultHeaders = settings.headers;
    props.headers = settings.headers;
    props.isHeadersEditorEnabled = true;
    props.defaultEditorToolsVisibility = 'headers';
  }
  if (typeof settings.query === 'string') {
    props.defaultQuery = settings.query;
  }

  // shouldPersistHeaders keeps headers out of the saved tabs, but GraphiQL 4's history
  // plugin still saves each run's headers with it ("graphiql:queries" and
  // "graphiql:favorites"). This localStorage wrapper (the same shape as GraphiQL's
  // default one) drops them on the way in, and scrubs what an earlier page left.
  function headerlessStorage() {
    var local;
    try {
      local = window.localStorage;
      if (!local) {
        return null;
      }
    } catch (e) {
      return null;
    }
    var prefix = 'graphiql:';
    var historyKeys = { 'graphiql:queries': true, 'graphiql:favorites': true };
    function withoutHeaders(value) {
      try {
        var data = JSON.parse(value);
        var changed = false;
        if (data && typeof data === 'object') {
          Object.keys(data).forEach(function (list) {
            if (Array.isArray(data[list])) {
              data[list].forEach(function (item) {
                if (item && typeof item === 'object' && 'headers' in item) {
                  delete item.headers;
                  changed = true;
                }
              });
            }
          });
        }
        return changed ? JSON.stringify(data) : value;
      } catch (e) {
        return value;
      }
    }
    Object.keys(historyKeys).forEach(function (key) {
      try {
        var stored = local.getItem(key);
        if (stored !== null) {
          var scrubbed = withoutHeaders(stored);
          if (scrubbed !== stored) {
            local.setItem(key, scrubbed);
          }
        }
      } catch (e) {
        // Storage unavailable: nothing was saved there either.
      }
    });
    return {
      getItem: function (key) {
        return local.getItem(key);
      },
      setItem: function (key, value) {
        local.setItem(key, historyKeys[key] ? withoutHeaders(value) : value);
      },
      removeItem: function (key) {
        local.removeItem(key);
      },
      get length() {
        var count = 0;
        for (var i = 0; i < local.length; i++) {
          if (String(local.key(i)).indexOf(prefix) === 0) {
            count += 1;
          }
        }
        return count;
      },
      clear: function () {
        var keys = [];
        for (var i = 0; i < local.length; i++) {
          keys.push(local.key(i));
        }
        keys.forEach(function (key) {
          if (String(key).indexOf(prefix) === 0) {
            local.removeItem(key);
          }
        });
      }
    };
  }

  ReactDOM.createRoot(root).render(React.createElement(GraphiQL, props));
})();
