/*
 * The backend of the test Backstage app: catalog, auth (guest provider) and
 * proxy on the new backend system, PostgreSQL only.
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

backend.start();
