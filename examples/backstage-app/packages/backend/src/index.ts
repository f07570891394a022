/*
 * The backend of the example Backstage app: catalog, scaffolder, search, auth
 * (guest provider) and proxy on the new backend system, PostgreSQL only.
 *
 * One image serves a single backend or any part of a split one: the
 * environment variable BACKSTAGE_BACKEND_PLUGINS (comma-separated plugin IDs,
 * e.g. "auth,catalog,proxy") chooses the plugins this process hosts; unset,
 * it hosts every plugin but the gateway. The gateway plugin routes requests
 * for plugins hosted elsewhere to them (discovery.endpoints in app-config).
 *
 * The frontend is served by a separate static web server, so the app backend
 * plugin (which serves the frontend bundle from this process) is not added:
 * it would also pull the whole frontend dependency tree into the production
 * install of the backend.
 */
import { createBackend } from '@backstage/backend-defaults';

// What backend.add() takes: a plugin or module, or the promise of its import.
type Feature = Parameters<ReturnType<typeof createBackend>['add']>[0];

// Each plugin ID with the modules that belong to it.
const features: Record<string, Array<() => Feature>> = {
  proxy: [() => import('@backstage/plugin-proxy-backend')],
  auth: [
    () => import('@backstage/plugin-auth-backend'),
    () => import('@backstage/plugin-auth-backend-module-guest-provider'),
  ],
  catalog: [
    () => import('@backstage/plugin-catalog-backend'),
    // Lets the catalog accept the Template kind the scaffolder runs.
    () =>
      import('@backstage/plugin-catalog-backend-module-scaffolder-entity-model'),
  ],
  scaffolder: [() => import('@backstage/plugin-scaffolder-backend')],
  // Search indexes the catalog into PostgreSQL's full-text search: no search
  // server beside the database the backend already has.
  search: [
    () => import('@backstage/plugin-search-backend'),
    () => import('@backstage/plugin-search-backend-module-pg'),
    () => import('@backstage/plugin-search-backend-module-catalog'),
  ],
  gateway: [() => import('@backstage/plugin-gateway-backend')],
};

const chosen = (process.env.BACKSTAGE_BACKEND_PLUGINS ?? '')
  .split(',')
  .map(id => id.trim())
  .filter(id => id.length > 0);
const unknown = chosen.filter(id => !(id in features));
if (unknown.length > 0) {
  throw new Error(
    `BACKSTAGE_BACKEND_PLUGINS names plugins this backend does not have: ${unknown.join(', ')}; ` +
      `it has ${Object.keys(features).join(', ')}`,
  );
}
const pluginIds =
  chosen.length > 0
    ? chosen
    : Object.keys(features).filter(id => id !== 'gateway');

const backend = createBackend();
for (const id of pluginIds) {
  for (const feature of features[id]) {
    backend.add(feature());
  }
}
backend.start();
