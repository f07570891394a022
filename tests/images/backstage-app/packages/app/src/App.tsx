import { createApp } from '@backstage/frontend-defaults';
import catalogPlugin from '@backstage/plugin-catalog/alpha';
import orgPlugin from '@backstage/plugin-org/alpha';

// No sign-in page extension: the app signs in as the guest user on its own,
// through the auth backend's guest provider.
export default createApp({
  features: [catalogPlugin, orgPlugin],
});
