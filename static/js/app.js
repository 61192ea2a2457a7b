// Behaviour that htmx attributes cannot express. No inline scripts anywhere (strict CSP).
"use strict";
