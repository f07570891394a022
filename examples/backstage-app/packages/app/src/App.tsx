import { Navigate } from 'react-router-dom';
import { ProxiedSignInPage } from '@backstage/core-components';
import { createApp } from '@backstage/frontend-defaults';
import {
  createFrontendModule,
  PageBlueprint,
} from '@backstage/frontend-plugin-api';
import { SignInPageBlueprint } from '@backstage/plugin-app-react';
import apiDocsPlugin from '@backstage/plugin-api-docs/alpha';
import catalogPlugin from '@backstage/plugin-catalog/alpha';
import orgPlugin from '@backstage/plugin-org/alpha';
import scaffolderPlugin from '@backstage/plugin-scaffolder/alpha';
import searchPlugin from '@backstage/plugin-search/alpha';
import userSettingsPlugin from '@backstage/plugin-user-settings/alpha';

// Sign in as the guest user without a click: ProxiedSignInPage has no UI of
// its own and takes the session the auth backend's guest provider hands out
// (GET /api/auth/guest/refresh). The default sign-in page would show a
// "Guest / Enter" card instead.
const guestSignInPage = SignInPageBlueprint.make({
  params: {
    loader: async () => props => <ProxiedSignInPage {...props} provider="guest" />,
  },
});

// The app has no home page: its root opens the catalog.
const rootPage = PageBlueprint.make({
  name: 'root',
  params: {
    path: '/',
    noHeader: true,
    loader: async () => <Navigate to="/catalog" replace />,
  },
});

export default createApp({
  features: [
    catalogPlugin,
    orgPlugin,
    scaffolderPlugin,
    searchPlugin,
    apiDocsPlugin,
    userSettingsPlugin,
    createFrontendModule({
      pluginId: 'app',
      extensions: [guestSignInPage, rootPage],
    }),
  ],
});
