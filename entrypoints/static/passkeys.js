// Passkeys on auth-service's pages (served as /static/passkeys.js, the only script the
// pages' Content-Security-Policy allows).
//
// A form with data-passkey="create" or "get" carries the WebAuthn options the server made
// (data-passkey-options, JSON with base64url values) and a hidden input named
// passkey_response. Its button (data-passkey-button, hidden until this script runs) asks the
// browser for a passkey, puts the browser's answer (JSON) in that input and submits the form
// as any other: the server answers with a page or a redirect. A cancelled or failed prompt
// only shows a message (the element named by data-passkey-error, role="alert"); the page
// stays as it was and the button can be pressed again.
(function () {
  "use strict";

  function toBytes(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var text = atob(base64);
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) { bytes[i] = text.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      var out = { type: d.type, id: toBytes(d.id) };
      if (d.transports) { out.transports = d.transports; }
      return out;
    });
  }

  // PublicKeyCredential.parse*OptionsFromJSON and credential.toJSON() are recent (Chrome
  // 129, Firefox 119, Safari 18); older browsers get the same conversion by hand.
  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBytes(json.user.id) });
    options.excludeCredentials = descriptors(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.allowCredentials = descriptors(json.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") {
      try { return credential.toJSON(); } catch (ignored) { /* by hand below */ }
    }
    var r = credential.response;
    var response = { clientDataJSON: toBase64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toBase64url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toBase64url(r.authenticatorData);
      response.signature = toBase64url(r.signature);
      if (r.userHandle) { response.userHandle = toBase64url(r.userHandle); }
    }
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: response
    };
  }

  function failureMessage(error, creating) {
    switch (error && error.name) {
      case "NotAllowedError":
        return "The passkey request was cancelled or timed out. You can try again.";
      case "InvalidStateError":
        return creating ? "This device or security key already holds a passkey for your " +
          "account." : "This passkey cannot be used here. Please try again.";
      case "SecurityError":
        return "Passkeys do not work at this address. Please contact your administrator.";
      case "NotSupportedError":
        return "This device or browser cannot create a passkey of the kind this site uses.";
      case "AbortError":
        return "The passkey request was interrupted. You can try again.";
      default:
        return "The passkey could not be used. Please try again, or use another way.";
    }
  }

  function setUp(button) {
    var form = button.form;
    if (!form || !form.dataset.passkey) { return; }
    var creating = form.dataset.passkey === "create";
    var alertBox = document.getElementById(form.dataset.passkeyError);
    var field = form.querySelector('input[name="passkey_response"]');

    function show(message) {
      if (!alertBox) { return; }
      alertBox.textContent = message;
      alertBox.hidden = false;
    }

    button.hidden = false;
    button.addEventListener("click", function () {
      if (alertBox) { alertBox.hidden = true; alertBox.textContent = ""; }
      if (!window.PublicKeyCredential || !navigator.credentials) {
        show("This browser does not support passkeys. Please use another way to sign in.");
        return;
      }
      if (creating && !form.reportValidity()) { return; }
      var options;
      try {
        options = JSON.parse(form.dataset.passkeyOptions);
      } catch (error) {
        show("This page is out of date. Please reload it and try again.");
        return;
      }
      button.disabled = true;
      var request = creating
        ? navigator.credentials.create({ publicKey: creationOptions(options) })
        : navigator.credentials.get({ publicKey: requestOptions(options) });
      request.then(function (credential) {
        if (!credential) { throw new Error("no credential"); }
        field.value = JSON.stringify(credentialJSON(credential));
        form.submit();
      }).catch(function (error) {
        button.disabled = false;
        show(failureMessage(error, creating));
      });
    });
  }

  var buttons = document.querySelectorAll("[data-passkey-button]");
  for (var i = 0; i < buttons.length; i++) { setUp(buttons[i]); }
})();
