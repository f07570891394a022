/*
 * The backend of the example Backstage app: catalog, scaffolder, search, auth
 * (guest provider) and proxy on the new backend system, PostgreSQL only.
 *
 * The frontend is served by a separate static web server, so the app backend
 * plugin (which serves the frontend bundle from this process) is not added:
 * it would also pull the whole frontend dependency tree into the production
 * install of the backend.
 */
import { createBackend } from '@backstage/backend-defaults';

const backend = createBackend();

backend.add(import('@backstage/plugin-proxy-backend'));

backend.add(import('@backstage/plugin-auth-backend'));
backend.add(import('@backstage/plugin-auth-backend-module-guest-provider'));

backend.add(import('@backstage/plugin-catalog-backend'));
// Lets the catalog accept the Template kind the scaffolder runs.
backend.add(
  import('@backstage/plugin-catalog-backend-module-scaffolder-entity-model'),
);

backend.add(import('@backstage/plugin-scaffolder-backend'));

// Search indexes the catalog into PostgreSQL's full-text search: no search
// server beside the database the backend already has.
backend.add(import('@backstage/plugin-search-backend'));
backend.add(import('@backstage/plugin-search-backend-module-pg'));
backend.add(import('@backstage/plugin-search-backend-module-catalog'));

backend.start();
